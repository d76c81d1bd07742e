"""SSL/TLS: ssl.log with Zeek's meaning, plus JA3, JA3S and JA4 fingerprints.

The parser reads the plaintext part of a TLS (or SSLv2-compatible) handshake from both
directions: records are reassembled across segments and handshake messages across records.
Zeek's rules, as its ``base/protocols/ssl`` scripts apply them:

- ``version`` is the server's: ServerHello's version, overridden by a single value in its
  supported_versions extension (TLS 1.3); names as Zeek's ``SSL::version_strings`` (TLSv12,
  TLSv13, TLSv13-draft23, unknown-32257 ...). ``cipher`` is the server's choice by IANA name.
- ``curve`` from the ServerKeyExchange (named curve) or the server's key_share.
- ``server_name`` is the first SNI name, ``next_protocol`` the server's ALPN choice.
- ``resumed``: the server echoed the client's session id (not for TLS 1.3), the client sent a
  session ticket and a ChangeCipherSpec without a ClientKeyExchange, or the server accepted a PSK.
- ``established``: a record that cannot be read (encrypted) arrives once both sides have sent
  ChangeCipherSpec; SSLv2 at the CLIENT-MASTER-KEY. Zeek logs the record then and stops
  analysing the connection; so does this parser. Otherwise the record is logged at the end of
  the connection. One addition to Zeek's rule: in TLS 1.3 an application-data record also
  switches its side to encrypted, so a TLS 1.3 session without the middlebox-compatibility
  ChangeCipherSpec still counts as established.
- ``ssl_history``: one letter per handshake message, ChangeCipherSpec, alert, heartbeat; the
  client's in upper case, at most 100.
- Certificates (TLS <= 1.2; TLS 1.3 sends them encrypted): ``cert_chain_fps`` and
  ``client_cert_chain_fps`` are SHA-256 fingerprints; both are set (possibly empty) once any
  certificate message is seen, as Zeek does. Subject and issuer of the first certificate.

Extras at the end of the record: ``ja3``/``ja3s`` (MD5 hex, GREASE removed, as Salesforce's
reference), ``ja4`` (FoxIO's TLS client fingerprint), ``alpn`` (the client's offer) and the
leaf certificate's validity.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.x509 import name_matches, parse_certificate

# IANA cipher suite names, as Zeek's SSL::cipher_desc spells them ("TLS_" is implied unless the
# name starts with "SSL"). Three-byte values are SSLv2 cipher kinds.
_CIPHERS_TEXT = """
010080 SSLv20_CK_RC4_128_WITH_MD5
020080 SSLv20_CK_RC4_128_EXPORT40_WITH_MD5
030080 SSLv20_CK_RC2_128_CBC_WITH_MD5
040080 SSLv20_CK_RC2_128_CBC_EXPORT40_WITH_MD5
050080 SSLv20_CK_IDEA_128_CBC_WITH_MD5
060040 SSLv20_CK_DES_64_CBC_WITH_MD5
0700C0 SSLv20_CK_DES_192_EDE3_CBC_WITH_MD5
0000 NULL_WITH_NULL_NULL
0001 RSA_WITH_NULL_MD5
0002 RSA_WITH_NULL_SHA
0003 RSA_EXPORT_WITH_RC4_40_MD5
0004 RSA_WITH_RC4_128_MD5
0005 RSA_WITH_RC4_128_SHA
0006 RSA_EXPORT_WITH_RC2_CBC_40_MD5
0007 RSA_WITH_IDEA_CBC_SHA
0008 RSA_EXPORT_WITH_DES40_CBC_SHA
0009 RSA_WITH_DES_CBC_SHA
000A RSA_WITH_3DES_EDE_CBC_SHA
000B DH_DSS_EXPORT_WITH_DES40_CBC_SHA
000C DH_DSS_WITH_DES_CBC_SHA
000D DH_DSS_WITH_3DES_EDE_CBC_SHA
000E DH_RSA_EXPORT_WITH_DES40_CBC_SHA
000F DH_RSA_WITH_DES_CBC_SHA
0010 DH_RSA_WITH_3DES_EDE_CBC_SHA
0011 DHE_DSS_EXPORT_WITH_DES40_CBC_SHA
0012 DHE_DSS_WITH_DES_CBC_SHA
0013 DHE_DSS_WITH_3DES_EDE_CBC_SHA
0014 DHE_RSA_EXPORT_WITH_DES40_CBC_SHA
0015 DHE_RSA_WITH_DES_CBC_SHA
0016 DHE_RSA_WITH_3DES_EDE_CBC_SHA
0017 DH_ANON_EXPORT_WITH_RC4_40_MD5
0018 DH_ANON_WITH_RC4_128_MD5
0019 DH_ANON_EXPORT_WITH_DES40_CBC_SHA
001A DH_ANON_WITH_DES_CBC_SHA
001B DH_ANON_WITH_3DES_EDE_CBC_SHA
001C SSL_FORTEZZA_KEA_WITH_NULL_SHA
001D SSL_FORTEZZA_KEA_WITH_FORTEZZA_CBC_SHA
001E KRB5_WITH_DES_CBC_SHA
001F KRB5_WITH_3DES_EDE_CBC_SHA
0020 KRB5_WITH_RC4_128_SHA
0021 KRB5_WITH_IDEA_CBC_SHA
0022 KRB5_WITH_DES_CBC_MD5
0023 KRB5_WITH_3DES_EDE_CBC_MD5
0024 KRB5_WITH_RC4_128_MD5
0025 KRB5_WITH_IDEA_CBC_MD5
0026 KRB5_EXPORT_WITH_DES_CBC_40_SHA
0027 KRB5_EXPORT_WITH_RC2_CBC_40_SHA
0028 KRB5_EXPORT_WITH_RC4_40_SHA
0029 KRB5_EXPORT_WITH_DES_CBC_40_MD5
002A KRB5_EXPORT_WITH_RC2_CBC_40_MD5
002B KRB5_EXPORT_WITH_RC4_40_MD5
002F RSA_WITH_AES_128_CBC_SHA
0030 DH_DSS_WITH_AES_128_CBC_SHA
0031 DH_RSA_WITH_AES_128_CBC_SHA
0032 DHE_DSS_WITH_AES_128_CBC_SHA
0033 DHE_RSA_WITH_AES_128_CBC_SHA
0034 DH_ANON_WITH_AES_128_CBC_SHA
0035 RSA_WITH_AES_256_CBC_SHA
0036 DH_DSS_WITH_AES_256_CBC_SHA
0037 DH_RSA_WITH_AES_256_CBC_SHA
0038 DHE_DSS_WITH_AES_256_CBC_SHA
0039 DHE_RSA_WITH_AES_256_CBC_SHA
003A DH_ANON_WITH_AES_256_CBC_SHA
003B RSA_WITH_NULL_SHA256
003C RSA_WITH_AES_128_CBC_SHA256
003D RSA_WITH_AES_256_CBC_SHA256
003E DH_DSS_WITH_AES_128_CBC_SHA256
003F DH_RSA_WITH_AES_128_CBC_SHA256
0040 DHE_DSS_WITH_AES_128_CBC_SHA256
0041 RSA_WITH_CAMELLIA_128_CBC_SHA
0042 DH_DSS_WITH_CAMELLIA_128_CBC_SHA
0043 DH_RSA_WITH_CAMELLIA_128_CBC_SHA
0044 DHE_DSS_WITH_CAMELLIA_128_CBC_SHA
0045 DHE_RSA_WITH_CAMELLIA_128_CBC_SHA
0046 DH_ANON_WITH_CAMELLIA_128_CBC_SHA
0060 RSA_EXPORT1024_WITH_RC4_56_MD5
0061 RSA_EXPORT1024_WITH_RC2_CBC_56_MD5
0062 RSA_EXPORT1024_WITH_DES_CBC_SHA
0063 DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA
0064 RSA_EXPORT1024_WITH_RC4_56_SHA
0065 DHE_DSS_EXPORT1024_WITH_RC4_56_SHA
0066 DHE_DSS_WITH_RC4_128_SHA
0067 DHE_RSA_WITH_AES_128_CBC_SHA256
0068 DH_DSS_WITH_AES_256_CBC_SHA256
0069 DH_RSA_WITH_AES_256_CBC_SHA256
006A DHE_DSS_WITH_AES_256_CBC_SHA256
006B DHE_RSA_WITH_AES_256_CBC_SHA256
006C DH_ANON_WITH_AES_128_CBC_SHA256
006D DH_ANON_WITH_AES_256_CBC_SHA256
0072 DHE_DSS_WITH_3DES_EDE_CBC_RMD
0073 DHE_DSS_WITH_AES_128_CBC_RMD
0074 DHE_DSS_WITH_AES_256_CBC_RMD
0077 DHE_RSA_WITH_3DES_EDE_CBC_RMD
0078 DHE_RSA_WITH_AES_128_CBC_RMD
0079 DHE_RSA_WITH_AES_256_CBC_RMD
007C RSA_WITH_3DES_EDE_CBC_RMD
007D RSA_WITH_AES_128_CBC_RMD
007E RSA_WITH_AES_256_CBC_RMD
0080 GOSTR341094_WITH_28147_CNT_IMIT
0081 GOSTR341001_WITH_28147_CNT_IMIT
0082 GOSTR341094_WITH_NULL_GOSTR3411
0083 GOSTR341001_WITH_NULL_GOSTR3411
0084 RSA_WITH_CAMELLIA_256_CBC_SHA
0085 DH_DSS_WITH_CAMELLIA_256_CBC_SHA
0086 DH_RSA_WITH_CAMELLIA_256_CBC_SHA
0087 DHE_DSS_WITH_CAMELLIA_256_CBC_SHA
0088 DHE_RSA_WITH_CAMELLIA_256_CBC_SHA
0089 DH_ANON_WITH_CAMELLIA_256_CBC_SHA
008A PSK_WITH_RC4_128_SHA
008B PSK_WITH_3DES_EDE_CBC_SHA
008C PSK_WITH_AES_128_CBC_SHA
008D PSK_WITH_AES_256_CBC_SHA
008E DHE_PSK_WITH_RC4_128_SHA
008F DHE_PSK_WITH_3DES_EDE_CBC_SHA
0090 DHE_PSK_WITH_AES_128_CBC_SHA
0091 DHE_PSK_WITH_AES_256_CBC_SHA
0092 RSA_PSK_WITH_RC4_128_SHA
0093 RSA_PSK_WITH_3DES_EDE_CBC_SHA
0094 RSA_PSK_WITH_AES_128_CBC_SHA
0095 RSA_PSK_WITH_AES_256_CBC_SHA
0096 RSA_WITH_SEED_CBC_SHA
0097 DH_DSS_WITH_SEED_CBC_SHA
0098 DH_RSA_WITH_SEED_CBC_SHA
0099 DHE_DSS_WITH_SEED_CBC_SHA
009A DHE_RSA_WITH_SEED_CBC_SHA
009B DH_ANON_WITH_SEED_CBC_SHA
009C RSA_WITH_AES_128_GCM_SHA256
009D RSA_WITH_AES_256_GCM_SHA384
009E DHE_RSA_WITH_AES_128_GCM_SHA256
009F DHE_RSA_WITH_AES_256_GCM_SHA384
00A0 DH_RSA_WITH_AES_128_GCM_SHA256
00A1 DH_RSA_WITH_AES_256_GCM_SHA384
00A2 DHE_DSS_WITH_AES_128_GCM_SHA256
00A3 DHE_DSS_WITH_AES_256_GCM_SHA384
00A4 DH_DSS_WITH_AES_128_GCM_SHA256
00A5 DH_DSS_WITH_AES_256_GCM_SHA384
00A6 DH_ANON_WITH_AES_128_GCM_SHA256
00A7 DH_ANON_WITH_AES_256_GCM_SHA384
00A8 PSK_WITH_AES_128_GCM_SHA256
00A9 PSK_WITH_AES_256_GCM_SHA384
00AA DHE_PSK_WITH_AES_128_GCM_SHA256
00AB DHE_PSK_WITH_AES_256_GCM_SHA384
00AC RSA_PSK_WITH_AES_128_GCM_SHA256
00AD RSA_PSK_WITH_AES_256_GCM_SHA384
00AE PSK_WITH_AES_128_CBC_SHA256
00AF PSK_WITH_AES_256_CBC_SHA384
00B0 PSK_WITH_NULL_SHA256
00B1 PSK_WITH_NULL_SHA384
00B2 DHE_PSK_WITH_AES_128_CBC_SHA256
00B3 DHE_PSK_WITH_AES_256_CBC_SHA384
00B4 DHE_PSK_WITH_NULL_SHA256
00B5 DHE_PSK_WITH_NULL_SHA384
00B6 RSA_PSK_WITH_AES_128_CBC_SHA256
00B7 RSA_PSK_WITH_AES_256_CBC_SHA384
00B8 RSA_PSK_WITH_NULL_SHA256
00B9 RSA_PSK_WITH_NULL_SHA384
00BA RSA_WITH_CAMELLIA_128_CBC_SHA256
00BB DH_DSS_WITH_CAMELLIA_128_CBC_SHA256
00BC DH_RSA_WITH_CAMELLIA_128_CBC_SHA256
00BD DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256
00BE DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
00BF DH_ANON_WITH_CAMELLIA_128_CBC_SHA256
00C0 RSA_WITH_CAMELLIA_256_CBC_SHA256
00C1 DH_DSS_WITH_CAMELLIA_256_CBC_SHA256
00C2 DH_RSA_WITH_CAMELLIA_256_CBC_SHA256
00C3 DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256
00C4 DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256
00C5 DH_ANON_WITH_CAMELLIA_256_CBC_SHA256
00C6 SM4_GCM_SM3
00C7 SM4_CCM_SM3
00FF EMPTY_RENEGOTIATION_INFO_SCSV
1301 AES_128_GCM_SHA256
1302 AES_256_GCM_SHA384
1303 CHACHA20_POLY1305_SHA256
1304 AES_128_CCM_SHA256
1305 AES_128_CCM_8_SHA256
1306 AEGIS_256_SHA384
1307 AEGIS_128L_SHA256
16B7 CECPQ1_RSA_WITH_CHACHA20_POLY1305_SHA256
16B8 CECPQ1_ECDSA_WITH_CHACHA20_POLY1305_SHA256
16B9 CECPQ1_RSA_WITH_AES_256_GCM_SHA384
16BA CECPQ1_ECDSA_WITH_AES_256_GCM_SHA384
5600 FALLBACK_SCSV
C001 ECDH_ECDSA_WITH_NULL_SHA
C002 ECDH_ECDSA_WITH_RC4_128_SHA
C003 ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA
C004 ECDH_ECDSA_WITH_AES_128_CBC_SHA
C005 ECDH_ECDSA_WITH_AES_256_CBC_SHA
C006 ECDHE_ECDSA_WITH_NULL_SHA
C007 ECDHE_ECDSA_WITH_RC4_128_SHA
C008 ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA
C009 ECDHE_ECDSA_WITH_AES_128_CBC_SHA
C00A ECDHE_ECDSA_WITH_AES_256_CBC_SHA
C00B ECDH_RSA_WITH_NULL_SHA
C00C ECDH_RSA_WITH_RC4_128_SHA
C00D ECDH_RSA_WITH_3DES_EDE_CBC_SHA
C00E ECDH_RSA_WITH_AES_128_CBC_SHA
C00F ECDH_RSA_WITH_AES_256_CBC_SHA
C010 ECDHE_RSA_WITH_NULL_SHA
C011 ECDHE_RSA_WITH_RC4_128_SHA
C012 ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
C013 ECDHE_RSA_WITH_AES_128_CBC_SHA
C014 ECDHE_RSA_WITH_AES_256_CBC_SHA
C015 ECDH_ANON_WITH_NULL_SHA
C016 ECDH_ANON_WITH_RC4_128_SHA
C017 ECDH_ANON_WITH_3DES_EDE_CBC_SHA
C018 ECDH_ANON_WITH_AES_128_CBC_SHA
C019 ECDH_ANON_WITH_AES_256_CBC_SHA
C01A SRP_SHA_WITH_3DES_EDE_CBC_SHA
C01B SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA
C01C SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA
C01D SRP_SHA_WITH_AES_128_CBC_SHA
C01E SRP_SHA_RSA_WITH_AES_128_CBC_SHA
C01F SRP_SHA_DSS_WITH_AES_128_CBC_SHA
C020 SRP_SHA_WITH_AES_256_CBC_SHA
C021 SRP_SHA_RSA_WITH_AES_256_CBC_SHA
C022 SRP_SHA_DSS_WITH_AES_256_CBC_SHA
C023 ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
C024 ECDHE_ECDSA_WITH_AES_256_CBC_SHA384
C025 ECDH_ECDSA_WITH_AES_128_CBC_SHA256
C026 ECDH_ECDSA_WITH_AES_256_CBC_SHA384
C027 ECDHE_RSA_WITH_AES_128_CBC_SHA256
C028 ECDHE_RSA_WITH_AES_256_CBC_SHA384
C029 ECDH_RSA_WITH_AES_128_CBC_SHA256
C02A ECDH_RSA_WITH_AES_256_CBC_SHA384
C02B ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
C02C ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
C02D ECDH_ECDSA_WITH_AES_128_GCM_SHA256
C02E ECDH_ECDSA_WITH_AES_256_GCM_SHA384
C02F ECDHE_RSA_WITH_AES_128_GCM_SHA256
C030 ECDHE_RSA_WITH_AES_256_GCM_SHA384
C031 ECDH_RSA_WITH_AES_128_GCM_SHA256
C032 ECDH_RSA_WITH_AES_256_GCM_SHA384
C033 ECDHE_PSK_WITH_RC4_128_SHA
C034 ECDHE_PSK_WITH_3DES_EDE_CBC_SHA
C035 ECDHE_PSK_WITH_AES_128_CBC_SHA
C036 ECDHE_PSK_WITH_AES_256_CBC_SHA
C037 ECDHE_PSK_WITH_AES_128_CBC_SHA256
C038 ECDHE_PSK_WITH_AES_256_CBC_SHA384
C039 ECDHE_PSK_WITH_NULL_SHA
C03A ECDHE_PSK_WITH_NULL_SHA256
C03B ECDHE_PSK_WITH_NULL_SHA384
C03C RSA_WITH_ARIA_128_CBC_SHA256
C03D RSA_WITH_ARIA_256_CBC_SHA384
C03E DH_DSS_WITH_ARIA_128_CBC_SHA256
C03F DH_DSS_WITH_ARIA_256_CBC_SHA384
C040 DH_RSA_WITH_ARIA_128_CBC_SHA256
C041 DH_RSA_WITH_ARIA_256_CBC_SHA384
C042 DHE_DSS_WITH_ARIA_128_CBC_SHA256
C043 DHE_DSS_WITH_ARIA_256_CBC_SHA384
C044 DHE_RSA_WITH_ARIA_128_CBC_SHA256
C045 DHE_RSA_WITH_ARIA_256_CBC_SHA384
C046 DH_ANON_WITH_ARIA_128_CBC_SHA256
C047 DH_ANON_WITH_ARIA_256_CBC_SHA384
C048 ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256
C049 ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384
C04A ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256
C04B ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384
C04C ECDHE_RSA_WITH_ARIA_128_CBC_SHA256
C04D ECDHE_RSA_WITH_ARIA_256_CBC_SHA384
C04E ECDH_RSA_WITH_ARIA_128_CBC_SHA256
C04F ECDH_RSA_WITH_ARIA_256_CBC_SHA384
C050 RSA_WITH_ARIA_128_GCM_SHA256
C051 RSA_WITH_ARIA_256_GCM_SHA384
C052 DHE_RSA_WITH_ARIA_128_GCM_SHA256
C053 DHE_RSA_WITH_ARIA_256_GCM_SHA384
C054 DH_RSA_WITH_ARIA_128_GCM_SHA256
C055 DH_RSA_WITH_ARIA_256_GCM_SHA384
C056 DHE_DSS_WITH_ARIA_128_GCM_SHA256
C057 DHE_DSS_WITH_ARIA_256_GCM_SHA384
C058 DH_DSS_WITH_ARIA_128_GCM_SHA256
C059 DH_DSS_WITH_ARIA_256_GCM_SHA384
C05A DH_ANON_WITH_ARIA_128_GCM_SHA256
C05B DH_ANON_WITH_ARIA_256_GCM_SHA384
C05C ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256
C05D ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384
C05E ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256
C05F ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384
C060 ECDHE_RSA_WITH_ARIA_128_GCM_SHA256
C061 ECDHE_RSA_WITH_ARIA_256_GCM_SHA384
C062 ECDH_RSA_WITH_ARIA_128_GCM_SHA256
C063 ECDH_RSA_WITH_ARIA_256_GCM_SHA384
C064 PSK_WITH_ARIA_128_CBC_SHA256
C065 PSK_WITH_ARIA_256_CBC_SHA384
C066 DHE_PSK_WITH_ARIA_128_CBC_SHA256
C067 DHE_PSK_WITH_ARIA_256_CBC_SHA384
C068 RSA_PSK_WITH_ARIA_128_CBC_SHA256
C069 RSA_PSK_WITH_ARIA_256_CBC_SHA384
C06A PSK_WITH_ARIA_128_GCM_SHA256
C06B PSK_WITH_ARIA_256_GCM_SHA384
C06C DHE_PSK_WITH_ARIA_128_GCM_SHA256
C06D DHE_PSK_WITH_ARIA_256_GCM_SHA384
C06E RSA_PSK_WITH_ARIA_128_GCM_SHA256
C06F RSA_PSK_WITH_ARIA_256_GCM_SHA384
C070 ECDHE_PSK_WITH_ARIA_128_CBC_SHA256
C071 ECDHE_PSK_WITH_ARIA_256_CBC_SHA384
C072 ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256
C073 ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384
C074 ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256
C075 ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384
C076 ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256
C077 ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384
C078 ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256
C079 ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384
C07A RSA_WITH_CAMELLIA_128_GCM_SHA256
C07B RSA_WITH_CAMELLIA_256_GCM_SHA384
C07C DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
C07D DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
C07E DH_RSA_WITH_CAMELLIA_128_GCM_SHA256
C07F DH_RSA_WITH_CAMELLIA_256_GCM_SHA384
C080 DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256
C081 DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384
C082 DH_DSS_WITH_CAMELLIA_128_GCM_SHA256
C083 DH_DSS_WITH_CAMELLIA_256_GCM_SHA384
C084 DH_ANON_WITH_CAMELLIA_128_GCM_SHA256
C085 DH_ANON_WITH_CAMELLIA_256_GCM_SHA384
C086 ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256
C087 ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384
C088 ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256
C089 ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384
C08A ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256
C08B ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384
C08C ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256
C08D ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384
C08E PSK_WITH_CAMELLIA_128_GCM_SHA256
C08F PSK_WITH_CAMELLIA_256_GCM_SHA384
C090 DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256
C091 DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384
C092 RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256
C093 RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384
C094 PSK_WITH_CAMELLIA_128_CBC_SHA256
C095 PSK_WITH_CAMELLIA_256_CBC_SHA384
C096 DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256
C097 DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384
C098 RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256
C099 RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384
C09A ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256
C09B ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384
C09C RSA_WITH_AES_128_CCM
C09D RSA_WITH_AES_256_CCM
C09E DHE_RSA_WITH_AES_128_CCM
C09F DHE_RSA_WITH_AES_256_CCM
C0A0 RSA_WITH_AES_128_CCM_8
C0A1 RSA_WITH_AES_256_CCM_8
C0A2 DHE_RSA_WITH_AES_128_CCM_8
C0A3 DHE_RSA_WITH_AES_256_CCM_8
C0A4 PSK_WITH_AES_128_CCM
C0A5 PSK_WITH_AES_256_CCM
C0A6 DHE_PSK_WITH_AES_128_CCM
C0A7 DHE_PSK_WITH_AES_256_CCM
C0A8 PSK_WITH_AES_128_CCM_8
C0A9 PSK_WITH_AES_256_CCM_8
C0AA PSK_DHE_WITH_AES_128_CCM_8
C0AB PSK_DHE_WITH_AES_256_CCM_8
C0AC ECDHE_ECDSA_WITH_AES_128_CCM
C0AD ECDHE_ECDSA_WITH_AES_256_CCM
C0AE ECDHE_ECDSA_WITH_AES_128_CCM_8
C0AF ECDHE_ECDSA_WITH_AES_256_CCM_8
C0B0 ECCPWD_WITH_AES_128_GCM_SHA256
C0B1 ECCPWD_WITH_AES_256_GCM_SHA384
C0B2 ECCPWD_WITH_AES_128_CCM_SHA256
C0B3 ECCPWD_WITH_AES_256_CCM_SHA384
C0B4 SHA256_SHA256
C0B5 SHA384_SHA384
C100 GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC
C101 GOSTR341112_256_WITH_MAGMA_CTR_OMAC
C102 GOSTR341112_256_WITH_28147_CNT_IMIT
C103 GOSTR341112_256_WITH_KUZNYECHIK_MGM_L
C104 GOSTR341112_256_WITH_MAGMA_MGM_L
C105 GOSTR341112_256_WITH_KUZNYECHIK_MGM_S
C106 GOSTR341112_256_WITH_MAGMA_MGM_S
CC13 ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD
CC14 ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD
CC15 DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD
CCA8 ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
CCA9 ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
CCAA DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
CCAB PSK_WITH_CHACHA20_POLY1305_SHA256
CCAC ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256
CCAD DHE_PSK_WITH_CHACHA20_POLY1305_SHA256
CCAE RSA_PSK_WITH_CHACHA20_POLY1305_SHA256
D001 ECDHE_PSK_WITH_AES_128_GCM_SHA256
D002 ECDHE_PSK_WITH_AES_256_GCM_SHA384
D003 ECDHE_PSK_WITH_AES_128_CCM_8_SHA256
D004 ECDHE_PSK_WITH_AES_128_CCM_SHA256_OLD
D005 ECDHE_PSK_WITH_AES_128_CCM_SHA256
FEFE SSL_RSA_FIPS_WITH_DES_CBC_SHA
FEFF SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA
FF80 SSL_RSA_WITH_RC2_CBC_MD5
FF81 SSL_RSA_WITH_IDEA_CBC_MD5
FF82 SSL_RSA_WITH_DES_CBC_MD5
FF83 SSL_RSA_WITH_3DES_EDE_CBC_MD5
FFE0 SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA_2
FFE1 SSL_RSA_FIPS_WITH_DES_CBC_SHA_2
"""


def _table(text: str, prefix: str = "") -> dict[int, str]:
    out = {}
    for line in text.strip().splitlines():
        code, name = line.split()
        out[int(code, 16)] = name if name.startswith("SSL") else prefix + name
    return out


CIPHERS: dict[int, str] = _table(_CIPHERS_TEXT, "TLS_")

CURVES: dict[int, str] = {
    **dict(enumerate(
        "sect163k1 sect163r1 sect163r2 sect193r1 sect193r2 sect233k1 sect233r1 sect239k1 sect283k1 "
        "sect283r1 sect409k1 sect409r1 sect571k1 sect571r1 secp160k1 secp160r1 secp160r2 secp192k1 "
        "secp192r1 secp224k1 secp224r1 secp256k1 secp256r1 secp384r1 secp521r1 brainpoolP256r1 "
        "brainpoolP384r1 brainpoolP512r1 x25519 x448 brainpoolP256r1tls13 brainpoolP384r1tls13 "
        "brainpoolP512r1tls13 GC256A GC256B GC256C GC256D GC512A GC512B GC512C curveSM2".split(), start=1)),
    256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144", 260: "ffdhe8192",
    512: "MLKEM512", 513: "MLKEM768", 514: "MLKEM1024", 4587: "SecP256r1MLKEM768",
    4588: "X25519MLKEM768", 4589: "SecP384r1MLKEM1024", 4590: "curveSM2MLKEM768", 16696: "CECPQ2",
    25497: "X25519Kyber768Draft00", 25498: "SecP256r1Kyber768Draft00",
    0xFF01: "arbitrary_explicit_prime_curves", 0xFF02: "arbitrary_explicit_char2_curves",
}

ALERTS: dict[int, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 21: "decryption_failed",
    22: "record_overflow", 30: "decompression_failure", 40: "handshake_failure", 41: "no_certificate",
    42: "bad_certificate", 43: "unsupported_certificate", 44: "certificate_revoked",
    45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
    70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    86: "inappropriate_fallback", 90: "user_canceled", 100: "no_renegotiation",
    110: "unsupported_extension", 111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required", 117: "general_error",
    120: "no_application_protocol", 121: "ech_required",
}

_VERSIONS = {0x0002: "SSLv2", 0x0300: "SSLv3", 0x0301: "TLSv10", 0x0302: "TLSv11", 0x0303: "TLSv12",
             0x0304: "TLSv13", 0xFEFF: "DTLSv10", 0xFEFD: "DTLSv12", 0xFEFC: "DTLSv13"}

# Zeek's ssl_history letter per handshake message type (client letters are upper-cased).
_HS_LETTERS = {0: "h", 1: "c", 2: "s", 3: "v", 4: "t", 5: "e", 6: "j", 8: "o", 11: "x", 12: "k",
               13: "r", 14: "n", 15: "y", 16: "g", 20: "f", 21: "w", 22: "u", 23: "a", 24: "p",
               254: "m"}
_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_MAX_HISTORY = 100
_MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext limit
_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}


def version_name(v: int) -> str:
    """Zeek's SSL::version_strings, with its default for TLS 1.3 drafts and unknown values."""
    if v in _VERSIONS:
        return _VERSIONS[v]
    if v // 0xFF == 0x7F:
        return f"TLSv13-draft{v % 0x7F}"
    return f"unknown-{v}"


def cipher_name(code: int) -> str:
    return CIPHERS.get(code, f"unknown-{code}")


def is_grease(v: int) -> bool:
    """RFC 8701 GREASE values (0x0A0A, 0x1A1A, ... 0xFAFA)."""
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def _u16s(raw: bytes) -> list[int]:
    n = len(raw) // 2
    return list(struct.unpack(f">{n}H", raw[:2 * n]))


def _vec(raw: bytes, off: int, width: int) -> tuple[bytes, int]:
    """A length-prefixed vector at ``off``: (contents, offset after it); raises ValueError if short."""
    if off + width > len(raw):
        raise ValueError("short vector length")
    n = int.from_bytes(raw[off:off + width], "big")
    end = off + width + n
    if end > len(raw):
        raise ValueError("vector overruns")
    return raw[off + width:end], end


def _extensions(raw: bytes, off: int) -> list[tuple[int, bytes]]:
    if off + 2 > len(raw):
        return []
    block, _ = _vec(raw, off, 2)
    out, pos = [], 0
    while pos + 4 <= len(block):
        etype = int.from_bytes(block[pos:pos + 2], "big")
        data, pos = _vec(block, pos + 2, 2)
        out.append((etype, data))
    return out


def _alpn_names(data: bytes) -> list[str]:
    names: list[str] = []
    try:
        block, _ = _vec(data, 0, 2)
        pos = 0
        while pos < len(block):
            name, pos = _vec(block, pos, 1)
            names.append(name.decode("latin-1"))
    except ValueError:
        pass
    return names


def ja3_string(version: int, ciphers: list[int], extensions: list[int], groups: list[int],
               point_formats: list[int]) -> str:
    """Salesforce JA3 (or JA3S with groups/point formats omitted by the caller): decimal, GREASE removed."""
    def dash(values: list[int]) -> str:
        return "-".join(str(v) for v in values if not is_grease(v))
    return ",".join([str(version), dash(ciphers), dash(extensions), dash(groups), dash(point_formats)])


def ja4(*, transport: str, version: int, supported_versions: list[int], sni: bool, ciphers: list[int],
        extensions: list[int], alpn: list[str], sig_algs: list[int]) -> str:
    """FoxIO JA4 for a ClientHello (``transport`` "t" TCP, "q" QUIC, "d" DTLS)."""
    offered = [v for v in supported_versions if not is_grease(v)]
    best = max(offered) if offered else version
    ver = _JA4_VERSIONS.get(best, "00")
    ciph = [c for c in ciphers if not is_grease(c)]
    exts = [e for e in extensions if not is_grease(e)]
    if alpn and alpn[0]:
        first = alpn[0]
        if first[0].isascii() and first[0].isalnum() and first[-1].isascii() and first[-1].isalnum():
            alpn_part = first[0] + first[-1]
        else:
            hexed = first.encode("latin-1").hex()
            alpn_part = hexed[0] + hexed[-1]
    else:
        alpn_part = "00"
    a = f"{transport}{ver}{'d' if sni else 'i'}{min(len(ciph), 99):02d}{min(len(exts), 99):02d}{alpn_part}"

    def trunc(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    b = trunc(",".join(sorted(f"{c:04x}" for c in ciph))) if ciph else "000000000000"
    ext_list = ",".join(sorted(f"{e:04x}" for e in exts if e not in (0x0000, 0x0010)))
    sigs = ",".join(f"{s:04x}" for s in sig_algs if not is_grease(s))
    c = trunc(f"{ext_list}_{sigs}" if sigs else ext_list) if exts else "000000000000"
    return f"{a}_{b}_{c}"


@functools.lru_cache(maxsize=4096)
def _client_fingerprints(version: int, ciphers: tuple[int, ...], ext_types: tuple[int, ...], groups: tuple[int, ...],
                         points: tuple[int, ...], versions: tuple[int, ...], sni: bool, alpn: tuple[str, ...],
                         sig_algs: tuple[int, ...]) -> tuple[str, str]:
    """(JA3 as its MD5, JA4) of a ClientHello; cached, since a network's clients repeat themselves."""
    ja3 = ja3_string(version, list(ciphers), list(ext_types), list(groups), list(points))
    return (hashlib.md5(ja3.encode()).hexdigest(),
            ja4(transport="t", version=version, supported_versions=list(versions), sni=sni, ciphers=list(ciphers),
                extensions=list(ext_types), alpn=list(alpn), sig_algs=list(sig_algs)))


class _Side:
    """Per-direction reassembly state."""

    __slots__ = ("buf", "hs", "encrypted", "dead", "records", "v2")

    def __init__(self) -> None:
        self.buf = bytearray()  # bytes not yet forming a complete record
        self.hs = bytearray()  # handshake bytes not yet forming a complete message
        self.encrypted = False  # this side sent ChangeCipherSpec: its records are ciphertext now
        self.dead = False  # stopped parsing this direction (garbage, gap or buffer limit)
        self.records = 0
        self.v2 = False  # this side speaks SSLv2 record framing (its first record did)


class TLS(Parser):
    service = "ssl"
    transport = "tcp"
    ports = frozenset({443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 5223, 5061, 8443})
    logs: ClassVar[dict[str, LogFields]] = {"ssl": CONN_ID + (
        ("version", "string"), ("cipher", "string"),
        ("curve", "string"), ("server_name", "string"), ("resumed", "bool"), ("last_alert", "string"),
        ("next_protocol", "string"), ("established", "bool"), ("ssl_history", "string"),
        ("cert_chain_fps", "vector[string]"), ("client_cert_chain_fps", "vector[string]"),
        ("sni_matches_cert", "bool"), ("subject", "string"), ("issuer", "string"),
        ("client_subject", "string"), ("client_issuer", "string"), ("validation_status", "string"),
        ("ja3", "string"), ("ja3s", "string"), ("ja4", "string"), ("alpn", "vector[string]"),
        ("cert_not_before", "time"), ("cert_not_after", "time"),
    )}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.sides = {True: _Side(), False: _Side()}
        self.rec: dict = {}
        self.ts: float | None = None
        self.history: list[str] = []
        self.version_num: int | None = None
        self.cipher_num: int | None = None
        self.session_id: bytes | None = None
        self.client_ticket_nonempty = False
        self.client_kex_seen = False
        self.client_psk = False
        self.server_sans: tuple[str, ...] = ()
        self._inspect = out.inspect if getattr(out, "inspecting", False) else None
        self.now = 0.0  # the time of the bytes being parsed (for inspection buffers)
        self.certs_seen = False
        self.chains: dict[str, list[str]] = {"server": [], "client": []}
        self.done = False  # logged: the analysis is over

    # -- detection -------------------------------------------------------------------------
    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if len(data) >= 5 and data[0] == 22 and data[1] == 3 and data[2] <= 4:
            length = int.from_bytes(data[3:5], "big")
            if not 4 <= length <= _MAX_RECORD:
                return False
            return len(data) < 6 or data[5] in (1, 2)
        return cls._sslv2_hello(data) is not None

    @staticmethod
    def _sslv2_hello(data: bytes) -> bytes | None:
        """The body of an SSLv2-format ClientHello (2-byte header), or None."""
        if len(data) < 11 or not data[0] & 0x80 or data[2] != 1:
            return None
        length = ((data[0] & 0x7F) << 8) | data[1]
        version = int.from_bytes(data[3:5], "big")
        if version != 0x0002 and not 0x0300 <= version <= 0x0304:
            return None
        spec_len = int.from_bytes(data[5:7], "big")
        sid_len = int.from_bytes(data[7:9], "big")
        chal_len = int.from_bytes(data[9:11], "big")
        if spec_len % 3 or length != 9 + spec_len + sid_len + chal_len or not 16 <= chal_len <= 32:
            return None
        return bytes(data[2:2 + length]) if len(data) >= 2 + length else bytes(data[2:])

    # -- stream input ----------------------------------------------------------------------
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        side = self.sides[is_orig]
        if self.done or side.dead or not data:
            return
        if self.ts is None:
            self.ts = ts
        self.now = ts
        side.buf += data
        if len(side.buf) > MAX_BUFFER:
            side.dead = True
            side.buf.clear()
            self._check_sated()
            return
        try:
            self._records(is_orig, side, ts)
        except (ValueError, IndexError):
            side.dead = True
            side.buf.clear()
        if side.dead:
            self._check_sated()

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        side = self.sides[is_orig]
        side.dead = True  # record boundaries are lost
        side.buf.clear()
        side.hs.clear()
        self._check_sated()

    def _check_sated(self) -> None:
        if self.sides[True].dead and self.sides[False].dead:
            self.wants_data = False  # neither side can be read further: only end() is left

    def end(self, ts: float) -> None:
        if not self.done and self.ts is not None and (self.history or self.rec):
            self._log()

    # -- records ---------------------------------------------------------------------------
    def _records(self, is_orig: bool, side: _Side, ts: float) -> None:
        buf = side.buf
        pos = 0
        while not self.done and not side.dead:
            if len(buf) - pos < 3:
                break
            if side.records == 0 and buf[pos] & 0x80 and buf[pos + 2] in (1, 4):
                side.v2 = True
            if side.v2 and buf[pos] & 0x80:  # SSLv2 framing (2-byte header); TLS records may follow
                need = (((buf[pos] & 0x7F) << 8) | buf[pos + 1]) + 2
                if len(buf) - pos < need:
                    break
                self._sslv2(is_orig, bytes(buf[pos + 2:pos + need]))
                side.records += 1
                pos += need
                continue
            if len(buf) - pos < 5:
                break
            ctype = buf[pos]
            length = int.from_bytes(buf[pos + 3:pos + 5], "big")
            if not 20 <= ctype <= 26 or buf[pos + 1] not in (3, 0x7F, 0xFE) or length > _MAX_RECORD:
                side.dead = True
                break
            if len(buf) - pos < 5 + length:
                break
            # only plaintext alerts, handshakes and heartbeats are read: skip copying ciphertext
            readable = not side.encrypted and ctype in (21, 22)
            body = bytes(buf[pos + 5:pos + 5 + length]) if readable else b""
            pos += 5 + length
            side.records += 1
            self._record(is_orig, side, ctype, body, ts)
        del buf[:pos]

    def _record(self, is_orig: bool, side: _Side, ctype: int, body: bytes, ts: float) -> None:
        if ctype == 20:  # ChangeCipherSpec
            self._hist(is_orig, "i")
            side.encrypted = True
            side.hs.clear()
            if is_orig and self.client_ticket_nonempty and not self.client_kex_seen:
                self.rec["resumed"] = True
            return
        if ctype == 23 and self._tls13():
            side.encrypted = True  # TLS 1.3 without middlebox-compatibility ChangeCipherSpec
        if side.encrypted:
            self._ciphertext()
            return
        if ctype == 21:
            for i in range(0, len(body) - 1, 2):
                self._hist(is_orig, "l")
                self.rec["last_alert"] = ALERTS.get(body[i + 1], f"unknown-{body[i + 1]}")
        elif ctype == 22:
            side.hs += body
            self._handshakes(is_orig, side)
        elif ctype == 24:
            self._hist(is_orig, "b")
        elif ctype != 23:
            self._hist(is_orig, "q")

    def _ciphertext(self) -> None:
        if self.sides[True].encrypted and self.sides[False].encrypted and not self.done:
            self.rec["established"] = True
            self._log()

    def _tls13(self) -> bool:
        v = self.version_num
        return v is not None and (v == 0x0304 or v // 0xFF == 0x7F or v == 0x7E01 or v == 0x7E02)

    def _hist(self, is_orig: bool, letter: str) -> None:
        if len(self.history) < _MAX_HISTORY:
            self.history.append(letter.upper() if is_orig else letter.lower())

    # -- handshake messages ----------------------------------------------------------------
    def _handshakes(self, is_orig: bool, side: _Side) -> None:
        hs = side.hs
        pos = 0
        while len(hs) - pos >= 4 and not self.done:
            mtype = hs[pos]
            length = int.from_bytes(hs[pos + 1:pos + 4], "big")
            if length > MAX_BUFFER:
                side.dead = True
                hs.clear()
                return
            if len(hs) - pos < 4 + length:
                break
            msg = bytes(hs[pos + 4:pos + 4 + length])
            pos += 4 + length
            self._handshake(is_orig, mtype, msg)
        del hs[:pos]

    def _handshake(self, is_orig: bool, mtype: int, msg: bytes) -> None:
        letter = _HS_LETTERS.get(mtype, "z")
        try:
            if mtype == 1:
                self._client_hello(msg)
            elif mtype == 2:
                if self._server_hello(msg):
                    letter = "j"
            elif mtype == 11:
                self._certificates(is_orig, msg)
            elif mtype == 12:
                self._server_key_exchange(msg)
            elif mtype == 16 and is_orig:
                self.client_kex_seen = True
        except (ValueError, IndexError):
            pass  # a malformed message still counts in the history
        self._hist(is_orig, letter)

    def _client_hello(self, msg: bytes) -> None:
        version = int.from_bytes(msg[0:2], "big")
        session_id, pos = _vec(msg, 34, 1)
        cipher_raw, pos = _vec(msg, pos, 2)
        _compression, pos = _vec(msg, pos, 1)
        exts = _extensions(msg, pos)
        ciphers = _u16s(cipher_raw)
        if session_id and session_id != b"\x00" * 32:
            self.session_id = session_id
        groups: list[int] = []
        points: list[int] = []
        sig_algs: list[int] = []
        versions: list[int] = []
        alpn: list[str] = []
        sni = False
        for etype, data in exts:
            if etype == 0:
                sni = True
                name = self._sni(data)
                if name is not None and "server_name" not in self.rec:
                    self.rec["server_name"] = name
                    self.out.name(self.conn.resp_h, name, ts=self.ts or 0.0, source="ssl")
            elif etype == 10:
                groups = _u16s(_vec(data, 0, 2)[0])
            elif etype == 11:
                points = list(_vec(data, 0, 1)[0])
            elif etype == 13:
                sig_algs = _u16s(_vec(data, 0, 2)[0])
            elif etype == 16:
                alpn = _alpn_names(data)
            elif etype == 43:
                versions = _u16s(_vec(data, 0, 1)[0])
            elif etype == 35 and data:
                self.client_ticket_nonempty = True
            elif etype == 41:
                self.client_psk = True
        if "ja3" in self.rec:
            return  # a second ClientHello (after a HelloRetryRequest): fingerprint the first
        self.rec["ja3"], self.rec["ja4"] = _client_fingerprints(
            version, tuple(ciphers), tuple(e for e, _ in exts), tuple(groups), tuple(points), tuple(versions),
            sni, tuple(alpn), tuple(sig_algs))
        if alpn:
            self.rec["alpn"] = alpn
        if self._inspect is not None:
            bufs = {"ja3.hash": self.rec["ja3"].encode(),
                    "ja3.string": ja3_string(version, ciphers, [e for e, _ in exts], groups, points).encode()}
            if "server_name" in self.rec:
                bufs["tls.sni"] = self.rec["server_name"].encode("latin-1")
            self._inspect(self.conn, True, self.now, 0, bufs)

    @staticmethod
    def _sni(data: bytes) -> str | None:
        block, _ = _vec(data, 0, 2)
        pos = 0
        while pos + 3 <= len(block):
            kind = block[pos]
            name, pos = _vec(block, pos + 1, 2)
            if kind == 0:
                return name.decode("latin-1")
        return None

    def _server_hello(self, msg: bytes) -> bool:
        """Parse a ServerHello; True if it is a HelloRetryRequest."""
        version = int.from_bytes(msg[0:2], "big")
        random = msg[2:34]
        if len(random) != 32:
            raise ValueError("short ServerHello")
        old_draft = version // 0xFF == 0x7F  # drafts before -22 put their version here: no session id
        if old_draft:
            session_id, pos = b"", 34
        else:
            session_id, pos = _vec(msg, 34, 1)
        cipher = int.from_bytes(msg[pos:pos + 2], "big")
        pos += 2
        if not old_draft:
            pos += 1  # compression method
        exts = _extensions(msg, pos)
        chosen_version = None
        ext_types = []
        for etype, data in exts:
            ext_types.append(etype)
            if etype == 43 and len(data) == 2:
                chosen_version = int.from_bytes(data, "big")
            elif etype in (51, 40) and len(data) >= 2:
                self.rec["curve"] = CURVES.get(int.from_bytes(data[0:2], "big"),
                                               f"unknown-{int.from_bytes(data[0:2], 'big')}")
            elif etype == 16:
                names = _alpn_names(data)
                if names:
                    self.rec["next_protocol"] = names[0]
            elif etype == 41 and self.client_psk:
                self.rec["resumed"] = True
        if self.version_num is None or chosen_version is not None:
            self.version_num = chosen_version if chosen_version is not None else version
        self.rec["version"] = version_name(self.version_num)
        self.cipher_num = cipher
        self.rec["cipher"] = cipher_name(cipher)
        v = self.version_num
        if self.session_id is not None and session_id == self.session_id and v // 0xFF != 0x7F and v != 0x0304:
            self.rec["resumed"] = True
        ja3s = ",".join([str(version), str(cipher), "-".join(str(e) for e in ext_types)])
        self.rec["ja3s"] = hashlib.md5(ja3s.encode()).hexdigest()
        if self._inspect is not None:
            self._inspect(self.conn, False, self.now, 0,
                          {"ja3s.hash": self.rec["ja3s"].encode(), "ja3s.string": ja3s.encode()})
        return random == _HRR_RANDOM

    def _certificates(self, is_orig: bool, msg: bytes) -> None:
        pos = 0
        if self._tls13():  # TLS 1.3 Certificate: request context, entries with extensions
            _ctx, pos = _vec(msg, 0, 1)
        chain_raw, _ = _vec(msg, pos, 3)
        self.certs_seen = True
        certs = []
        pos = 0
        while pos + 3 <= len(chain_raw):
            der, pos = _vec(chain_raw, pos, 3)
            certs.append(der)
            if self._tls13():
                _exts, pos = _vec(chain_raw, pos, 2)
        chain = self.chains["client" if is_orig else "server"]
        for i, der in enumerate(certs):
            cert = parse_certificate(der)
            chain.append(hashlib.sha256(der).hexdigest())
            if i == 0 and cert is not None:
                who = "" if not is_orig else "client_"
                self.rec[f"{who}subject"] = cert.subject
                self.rec[f"{who}issuer"] = cert.issuer
                if not is_orig:
                    self.rec["cert_not_before"] = cert.not_before
                    self.rec["cert_not_after"] = cert.not_after
                    self.server_sans = cert.san_dns + ((self._cn(cert.subject),) if cert.subject else ())
                if self._inspect is not None and not is_orig:
                    bufs = {"tls.cert_fingerprint": ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest()).encode()}
                    if cert.subject_dn is not None:
                        bufs["tls.cert_subject"] = cert.subject_dn.encode("utf-8", "replace")
                    if cert.issuer_dn is not None:
                        bufs["tls.cert_issuer"] = cert.issuer_dn.encode("utf-8", "replace")
                    self._inspect(self.conn, False, self.now, 0, bufs)

    @staticmethod
    def _cn(subject: str) -> str:
        for part in subject.split(","):
            if part.startswith("CN="):
                return part[3:]
        return ""

    def _server_key_exchange(self, msg: bytes) -> None:
        name = cipher_name(self.cipher_num) if self.cipher_num is not None else ""
        if ("ECDHE" in name or "ECDH_ANON" in name) and len(msg) >= 3 and msg[0] == 3:
            code = int.from_bytes(msg[1:3], "big")
            self.rec["curve"] = CURVES.get(code, f"unknown-{code}")

    def _sslv2(self, is_orig: bool, body: bytes) -> None:
        if not body:
            return
        if body[0] == 1 and is_orig:  # CLIENT-HELLO
            self._hist(True, "c")
        elif body[0] == 2 and is_orig:  # CLIENT-MASTER-KEY: Zeek counts SSLv2 as established here
            self.rec["established"] = True
            self._log()
        elif body[0] == 4 and not is_orig and len(body) >= 11:  # SERVER-HELLO
            version = int.from_bytes(body[3:5], "big")
            self.version_num = self.version_num or version
            self.rec["version"] = version_name(self.version_num)
            cert_len = int.from_bytes(body[5:7], "big")
            spec_len = int.from_bytes(body[7:9], "big")
            specs = body[11 + cert_len:11 + cert_len + spec_len]
            if len(specs) >= 3:
                code = int.from_bytes(specs[0:3], "big")
                self.rec["cipher"] = CIPHERS.get(code, f"unknown-{code}")
            self._hist(False, "s")

    # -- output ----------------------------------------------------------------------------
    def _log(self) -> None:
        self.done = True
        self.wants_data = False
        rec = self.rec
        record = {
            "ts": self.ts, "version": rec.get("version"), "cipher": rec.get("cipher"),
            "curve": rec.get("curve"), "server_name": rec.get("server_name"),
            "resumed": bool(rec.get("resumed")), "last_alert": rec.get("last_alert"),
            "next_protocol": rec.get("next_protocol"), "established": bool(rec.get("established")),
            "ssl_history": "".join(self.history),
            "cert_chain_fps": list(self.chains["server"]) if self.certs_seen else None,
            "client_cert_chain_fps": list(self.chains["client"]) if self.certs_seen else None,
            "subject": rec.get("subject"), "issuer": rec.get("issuer"),
            "client_subject": rec.get("client_subject"), "client_issuer": rec.get("client_issuer"),
            "sni_matches_cert": None, "validation_status": None,
            "ja3": rec.get("ja3"), "ja3s": rec.get("ja3s"), "ja4": rec.get("ja4"),
            "alpn": rec.get("alpn"), "cert_not_before": rec.get("cert_not_before"),
            "cert_not_after": rec.get("cert_not_after"),
        }
        sni = rec.get("server_name")
        if sni and self.server_sans:
            record["sni_matches_cert"] = any(name_matches(sni, n) for n in self.server_sans if n)
        for side in self.sides.values():
            side.buf.clear()
            side.hs.clear()
        self.out.log("ssl", record, self.conn)
