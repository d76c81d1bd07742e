"""DCE-RPC interface and operation names, as Zeek's dce_rpc.log spells them.

``ENDPOINTS``: interface UUID (lower case, string form) -> endpoint name; ``OPERATIONS``:
interface UUID -> operation names by opnum. Names follow Zeek's
``base/protocols/dce-rpc/consts.zeek`` (which follows the MS-* protocol specifications) for
the interfaces breaches use: service control (svcctl, PsExec), task scheduling (atsvc,
ITaskSchedulerService), registry (winreg), directory replication (drsuapi, DCSync), account
and policy enumeration (samr, lsarpc), shares and sessions (srvsvc, wkssvc), domain logon
(netlogon), printing (spoolss), the endpoint mapper, dssetup and DCOM activation.

    endpoint(uuid)          -> the endpoint name, or "unknown-<uuid>" (as Zeek)
    operation(uuid, opnum)  -> the operation name, or "unknown-<opnum>" (as Zeek)
"""

from __future__ import annotations

ENDPOINTS: dict[str, str] = {
    "367abb81-9844-35f1-ad32-98f038001003": "svcctl",
    "86d35949-83c9-4044-b424-db363231fd0c": "ITaskSchedulerService",
    "378e52b0-c0a9-11cf-822d-00aa0051e40f": "sasec",
    "1ff70682-0a51-30e8-076d-740be8cee98b": "atsvc",
    "0a74ef1c-41a4-4e06-83ae-dc74fb1cdd53": "idletask",
    "afa8bd80-7d8a-11c9-bef4-08002b102989": "mgmt",
    "000001a0-0000-0000-c000-000000000046": "IRemoteSCMActivator",
    "00000143-0000-0000-c000-000000000046": "IRemUnknown2",
    "12345778-1234-abcd-ef00-0123456789ab": "lsarpc",
    "76f03f96-cdfd-44fc-a22c-64950a001209": "IRemoteWinspool",
    "12345678-1234-abcd-ef00-01234567cffb": "netlogon",
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": "drsuapi",
    "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57": "IActivation",
    "99fcfec4-5260-101b-bbcb-00aa0021347a": "IObjectExporter",
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": "epmapper",
    "12345778-1234-abcd-ef00-0123456789ac": "samr",
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": "srvsvc",
    "6bffd098-a112-3610-9833-46c3f87e345a": "wkssvc",
    "3919286a-b10c-11d0-9ba8-00c04fd92ef5": "dssetup",
    "12345678-1234-abcd-ef00-0123456789ab": "spoolss",
    "9556dc99-828c-11cf-a37e-00aa003240c7": "IWbemServices",
    "f309ad18-d86a-11d0-a075-00c04fb68820": "IWbemLevel1Login",
    "338cd001-2244-31f1-aaaa-900038001003": "winreg",
    "3dde7c30-165d-11d1-ab8f-00805f14db40": "BackupKey",
    "82273fdc-e32a-18c3-3f78-827929dc23ea": "eventlog",
    "894de0c0-0d55-11d3-a322-00c04fa321a1": "InitShutdown",
    "d95afe70-a6d5-4259-822e-2c84da1ddb0d": "WindowsShutdown",
    "50abc2a4-574d-40b3-9d66-ee4fd5fba076": "dnsserver",
    "4fc742e0-4a10-11cf-8273-00aa004ae673": "netdfs",
}

# Pipe name (without \PIPE\, lower case) -> the interface usually bound on it, for a call whose
# bind was not seen (as Zeek's pipe_name_to_common_uuid).
PIPE_INTERFACES: dict[str, str] = {
    "winreg": "338cd001-2244-31f1-aaaa-900038001003",
    "spoolss": "12345678-1234-abcd-ef00-0123456789ab",
    "srvsvc": "4b324fc8-1670-01d3-1278-5a47bf6ee188",
}

# Operations Zeek does not log (noisy, of little value), by endpoint.
IGNORED: dict[str, frozenset[str]] = {
    "winreg": frozenset({"BaseRegCloseKey", "BaseRegGetVersion", "BaseRegOpenKey", "BaseRegQueryValue",
                         "BaseRegDeleteKeyEx", "OpenLocalMachine", "BaseRegEnumKey", "OpenClassesRoot"}),
    "spoolss": frozenset({"RpcSplOpenPrinter", "RpcClosePrinter"}),
    "wkssvc": frozenset({"NetrWkstaGetInfo"}),
}

# Names in opnum order; "-" marks an opnum without a name.
_OPS: dict[str, str] = {
    "367abb81-9844-35f1-ad32-98f038001003": """
        CloseServiceHandle ControlService DeleteService LockServiceDatabase QueryServiceObjectSecurity
        SetServiceObjectSecurity QueryServiceStatus SetServiceStatus UnlockServiceDatabase
        NotifyBootConfigStatus ScSetServiceBitsW ChangeServiceConfigW CreateServiceW EnumDependentServicesW
        EnumServicesStatusW OpenSCManagerW OpenServiceW QueryServiceConfigW QueryServiceLockStatusW
        StartServiceW GetServiceDisplayNameW GetServiceKeyNameW ScSetServiceBitsA ChangeServiceConfigA
        CreateServiceA EnumDependentServicesA EnumServicesStatusA OpenSCManagerA OpenServiceA
        QueryServiceConfigA QueryServiceLockStatusA StartServiceA GetServiceDisplayNameA GetServiceKeyNameA
        ScGetCurrentGroupStateW EnumServiceGroupW ChangeServiceConfig2A ChangeServiceConfig2W
        QueryServiceConfig2A QueryServiceConfig2W QueryServiceStatusEx EnumServicesStatusExA
        EnumServicesStatusExW ScSendTSMessage CreateServiceWOW64A CreateServiceWOW64W ScQueryServiceTagInfo
        NotifyServiceStatusChange GetNotifyResult CloseNotifyHandle ControlServiceExA ControlServiceExW
        ScSendPnPMessage ScValidatePnPService ScOpenServiceStatusHandle""",
    "86d35949-83c9-4044-b424-db363231fd0c": """
        SchRpcHighestVersion SchRpcRegisterTask SchRpcRetrieveTask SchRpcCreateFolder SchRpcSetSecurity
        SchRpcGetSecurity SchRpcEnumFolder SchRpcEnumTasks SchRpcEnumInstances SchRpcGetInstanceInfo
        SchRpcStopInstance SchRpcStop SchRpcRun SchRpcDelete SchRpcRename SchRpcScheduledRuntimes
        SchRpcGetLastRunInfo SchRpcGetTaskInfo""",
    "378e52b0-c0a9-11cf-822d-00aa0051e40f": """
        SASetAccountInformation SASetNSAccountInformation SAGetNSAccountInformation SAGetAccountInformation""",
    "1ff70682-0a51-30e8-076d-740be8cee98b": "NetrJobAdd NetrJobDel NetrJobEnum NetrJobGetInfo",
    "afa8bd80-7d8a-11c9-bef4-08002b102989": "inq_if_ids inq_stats is_server_listening stop_server_listening inq_princ_name",
    "000001a0-0000-0000-c000-000000000046": """
        QueryInterfaceIRemoteSCMActivator AddRefIRemoteISCMActivator ReleaseIRemoteISCMActivator
        RemoteGetClassObject RemoteCreateInstance""",
    "00000143-0000-0000-c000-000000000046": """
        QueryInterface AddRef Release RemQueryInterface RemAddRef RemRelease RemQueryInterface2""",
    "4d9f4ab8-7d1c-11cf-861e-0020af6e7c57": "RemoteActivation",
    "99fcfec4-5260-101b-bbcb-00aa0021347a": "ResolveOxid SimplePing ComplexPing ServerAlive ResolveOxid2 ServerAlive2",
    "12345678-1234-abcd-ef00-01234567cffb": """
        NetrLogonUasLogon NetrLogonUasLogoff NetrLogonSamLogon NetrLogonSamLogoff NetrServerReqChallenge
        NetrServerAuthenticate NetrServerPasswordSet NetrDatabaseDeltas NetrDatabaseSync NetrAccountDeltas
        NetrAccountSync NetrGetDCName NetrLogonControl NetrGetAnyDCName NetrLogonControl2
        NetrServerAuthenticate2 NetrDatabaseSync2 NetrDatabaseRedo NetrLogonControl2Ex
        NetrEnumerateTrustedDomains DsrGetDcName NetrLogonGetCapabilities NetrLogonSetServiceBits
        NetrLogonGetTrustRid NetrLogonComputeServerDigest NetrLogonComputeClientDigest
        NetrServerAuthenticate3 DsrGetDcNameEx DsrGetSiteName NetrLogonGetDomainInfo NetrServerPasswordSet2
        NetrServerPasswordGet NetrLogonSendToSam DsrAddressToSiteNamesW DsrGetDcNameEx2
        NetrLogonGetTimeServiceParentDomain NetrEnumerateTrustedDomainsEx DsrAddressToSiteNamesExW
        DsrGetDcSiteCoverageW NetrLogonSamLogonEx DsrEnumerateDomainTrusts DsrDeregisterDnsHostRecords
        NetrServerTrustPasswordsGet DsrGetForestTrustInformation NetrGetForestTrustInformation
        NetrLogonSamLogonWithFlags NetrServerGetTrustInfo unused DsrUpdateReadOnlyServerDnsRecords
        NetrChainSetClientAttributes""",
    "12345678-1234-abcd-ef00-0123456789ab": """
        RpcEnumPrinters RpcOpenPrinter RpcSetJob RpcGetJob RpcEnumJobs RpcAddPrinter RpcDeletePrinter
        RpcSetPrinter RpcGetPrinter RpcAddPrinterDriver RpcEnumPrinterDrivers RpcGetPrinterDriver
        RpcGetPrinterDriverDirectory RpcDeletePrinterDriver RpcAddPrintProcessor RpcEnumPrintProcessors
        RpcGetPrintProcessorDirectory RpcStartDocPrinter RpcStartPagePrinter RpcWritePrinter
        RpcEndPagePrinter RpcAbortPrinter RpcReadPrinter RpcEndDocPrinter RpcAddJob RpcScheduleJob
        RpcGetPrinterData RpcSetPrinterData RpcWaitForPrinterChange RpcClosePrinter RpcAddForm
        RpcDeleteForm RpcGetForm RpcSetForm RpcEnumForms RpcEnumPorts RpcEnumMonitors RpcAddPort
        RpcConfigurePort RpcDeletePort RpcCreatePrinterIC RpcPlayGdiScriptOnPrinterIC RpcDeletePrinterIC
        RpcAddPrinterConnection RpcDeletePrinterConnection RpcPrinterMessageBox RpcAddMonitor
        RpcDeleteMonitor RpcDeletePrintProcessor RpcAddPrintProvidor RpcDeletePrintProvidor
        RpcEnumPrintProcessorDatatypes RpcResetPrinter RpcGetPrinterDriver2
        RpcClientFindFirstPrinterChangeNotification RpcFindNextPrinterChangeNotification
        RpcFindClosePrinterChangeNotification RpcRouterFindFirstPrinterChangeNotificationOld
        RpcReplyOpenPrinter RpcRouterReplyPrinter RpcReplyClosePrinter RpcAddPortEx
        RpcRemoteFindFirstPrinterChangeNotification RpcSpoolerInit RpcResetPrinterEx
        RpcRemoteFindFirstPrinterChangeNotificationEx RpcRouterReplyPrinterEx
        RpcRouterRefreshPrinterChangeNotification RpcSetAllocFailCount RpcSplOpenPrinter RpcAddPrinterEx
        RpcSetPort RpcEnumPrinterData RpcDeletePrinterData RpcClusterSplOpen RpcClusterSplClose
        RpcClusterSplIsAlive RpcSetPrinterDataEx RpcGetPrinterDataEx RpcEnumPrinterDataEx RpcEnumPrinterKey
        RpcDeletePrinterDataEx RpcDeletePrinterKey RpcSeekPrinter RpcDeletePrinterDriverEx
        RpcAddPerMachineConnection RpcDeletePerMachineConnection RpcEnumPerMachineConnections RpcXcvData
        RpcAddPrinterDriverEx RpcSplOpenPrinter RpcGetSpoolFileInfo RpcCommitSpoolData
        RpcCloseSpoolFileHandle RpcFlushPrinter RpcSendRecvBidiData RpcAddDriverCatalog
        RpcAddPrinterConnection2 RpcDeletePrinterConnection2 RpcInstallPrinterDriverFromPackage
        RpcUploadPrinterDriverPackage RpcGetCorePrinterDrivers RpcCorePrinterDriverInstalled
        RpcGetPrinterDriverPackagePath RpcReportJobProcessingProgress""",
    "4b324fc8-1670-01d3-1278-5a47bf6ee188": """
        NetrCharDevEnum NetrCharDevGetInfo NetrCharDevControl NetrCharDevQEnum NetrCharDevQGetInfo
        NetrCharDevQSetInfo NetrCharDevQPurge NetrCharDevQPurgeSelf NetrConnectionEnum NetrFileEnum
        NetrFileGetInfo NetrFileClose NetrSessionEnum NetrSessionDel NetrShareAdd NetrShareEnum
        NetrShareGetInfo NetrShareSetInfo NetrShareDel NetrShareDelSticky NetrShareCheck NetrServerGetInfo
        NetrServerSetInfo NetrServerDiskEnum NetrServerStatisticsGet NetrServerTransportAdd
        NetrServerTransportEnum NetrServerTransportDel NetrRemoteTOD NetrServerSetServiceBits NetprPathType
        NetprPathCanonicalize NetprPathCompare NetprNameValidate NetprNameCanonicalize NetprNameCompare
        NetrShareEnumSticky NetrShareDelStart NetrShareDelCommit NetrpGetFileSecurity NetrpSetFileSecurity
        NetrServerTransportAddEx NetrServerSetServiceBitsEx NetrDfsGetVersion NetrDfsCreateLocalPartition
        NetrDfsDeleteLocalPartition NetrDfsSetLocalVolumeState NetrDfsSetServerInfo NetrDfsCreateExitPoint
        NetrDfsDeleteExitPoint NetrDfsModifyPrefix NetrDfsFixLocalVolume NetrDfsManagerReportSiteInfo
        NetrServerTransportDelEx - NetrServerAliasEnum NetrServerAliasDel NetrShareDelEx""",
    "12345778-1234-abcd-ef00-0123456789ac": """
        SamrConnect SamrCloseHandle SamrSetSecurityObject SamrQuerySecurityObject SamrShutdownSamServer
        SamrLookupDomainInSamServer SamrEnumerateDomainsInSamServer SamrOpenDomain SamrQueryInformationDomain
        SamrSetInformationDomain SamrCreateGroupInDomain SamrEnumerateGroupsInDomain SamrCreateUserInDomain
        SamrEnumerateUsersInDomain SamrCreateAliasInDomain SamrEnumerateAliasesInDomain SamrGetAliasMembership
        SamrLookupNamesInDomain SamrLookupIdsInDomain SamrOpenGroup SamrQueryInformationGroup
        SamrSetInformationGroup SamrAddMemberToGroup SamrDeleteGroup SamrRemoveMemberFromGroup
        SamrGetMembersInGroup SamrSetMemberAttributesOfGroup SamrOpenAlias SamrQueryInformationAlias
        SamrSetInformationAlias SamrDeleteAlias SamrAddMemberToAlias SamrRemoveMemberFromAlias
        SamrGetMembersInAlias SamrOpenUser SamrDeleteUser SamrQueryInformationUser SamrSetInformationUser
        SamrChangePasswordUser SamrGetGroupsForUser SamrQueryDisplayInformation
        SamrGetDisplayEnumerationIndex SamrTestPrivateFunctionsDomain SamrTestPrivateFunctionsUser
        SamrGetUserDomainPasswordInformation SamrRemoveMemberFromForeignDomain SamrQueryInformationDomain2
        SamrQueryInformationUser2 SamrQueryDisplayInformation2 SamrGetDisplayEnumerationIndex2
        SamrCreateUser2InDomain SamrQueryDisplayInformation3 SamrAddMultipleMembersToAlias
        SamrRemoveMultipleMembersFromAlias SamrOemChangePasswordUser2 SamrUnicodeChangePasswordUser2
        SamrGetDomainPasswordInformation SamrConnect2 SamrSetInformationUser2 SamrSetBootKeyInformation
        SamrGetBootKeyInformation SamrConnect3 SamrConnect4 SamrUnicodeChangePasswordUser3 SamrConnect5
        SamrRidToSid SamrSetDSRMPassword SamrValidatePassword SamrQueryLocalizableAccountsInDomain
        SamrPerformGenericOperation""",
    "338cd001-2244-31f1-aaaa-900038001003": """
        OpenClassesRoot OpenCurrentUser OpenLocalMachine OpenPerformanceData OpenUsers BaseRegCloseKey
        BaseRegCreateKey BaseRegDeleteKey BaseRegDeleteValue BaseRegEnumKey BaseRegEnumValue BaseRegFlushKey
        BaseRegGetKeySecurity BaseRegLoadKey BaseRegNotifyChangeKeyValue BaseRegOpenKey BaseRegQueryInfoKey
        BaseRegQueryValue BaseRegReplaceKey BaseRegRestoreKey BaseRegSaveKey BaseRegSetKeySecurity
        BaseRegSetValue BaseRegUnLoadKey BaseInitiateSystemShutdown BaseAbortSystemShutdown BaseRegGetVersion
        OpenCurrentConfig OpenDynData BaseRegQueryMultipleValues BaseInitiateSystemShutdownEx
        BaseRegSaveKeyEx OpenPerformanceText OpenPerformanceNlsText BaseRegQueryMultipleValues2
        BaseRegDeleteKeyEx""",
    "3919286a-b10c-11d0-9ba8-00c04fd92ef5": """
        DsRolerGetPrimaryDomainInformation DsRolerDnsNameToFlatName DsRolerDcAsDc DsRolerDcAsReplica
        DsRolerDemoteDc DsRolerGetDcOperationProgress DsRolerGetDcOperationResults DsRolerCancel
        DsRolerServerSaveStateForUpgrade DsRolerUpgradeDownlevelServer DsRolerAbortDownlevelServerUpgrade""",
    "12345778-1234-abcd-ef00-0123456789ab": """
        LsarClose LsarDelete LsarEnumeratePrivileges LsarQuerySecurityObject LsarSetSecurityObject
        LsarChangePassword LsarOpenPolicy LsarQueryInformationPolicy LsarSetInformationPolicy
        LsarClearAuditLog LsarCreateAccount LsarEnumerateAccounts LsarCreateTrustedDomain
        LsarEnumerateTrustedDomains LsarLookupNames LsarLookupSids LsarCreateSecret LsarOpenAccount
        LsarEnumeratePrivilegesAccount LsarAddPrivilegesToAccount LsarRemovePrivilegesFromAccount
        LsarGetQuotasForAccount LsarSetQuotasForAccount LsarGetSystemAccessAccount LsarSetSystemAccessAccount
        LsarOpenTrustedDomain LsarQueryInfoTrustedDomain LsarSetInformationTrustedDomain LsarOpenSecret
        LsarSetSecret LsarQuerySecret LsarLookupPrivilegeValue LsarLookupPrivilegeName
        LsarLookupPrivilegeDisplayName LsarDeleteObject LsarEnumerateAccountsWithUserRight
        LsarEnumerateAccountRights LsarAddAccountRights LsarRemoveAccountRights LsarQueryTrustedDomainInfo
        LsarSetTrustedDomainInfo LsarDeleteTrustedDomain LsarStorePrivateData LsarRetrievePrivateData
        LsarOpenPolicy2 LsarGetUserName LsarQueryInformationPolicy2 LsarSetInformationPolicy2
        LsarQueryTrustedDomainInfoByName LsarSetTrustedDomainInfoByName LsarEnumerateTrustedDomainsEx
        LsarCreateTrustedDomainEx LsarCloseTrustedDomainEx LsarQueryDomainInformationPolicy
        LsarSetDomainInformationPolicy LsarOpenTrustedDomainByName LsarTestCall LsarLookupSids2
        LsarLookupNames2 LsarCreateTrustedDomainEx2 CredrWrite CredrRead CredrEnumerate
        CredrWriteDomainCredentials CredrReadDomainCredentials CredrDelete CredrGetTargetInfo
        CredrProfileLoaded LsarLookupNames3 CredrGetSessionTypes LsarRegisterAuditEvent LsarGenAuditEvent
        LsarUnregisterAuditEvent LsarQueryForestTrustInformation LsarSetForestTrustInformation CredrRename
        LsarLookupSids3 LsarLookupNames4 LsarOpenPolicySce LsarAdtRegisterSecurityEventSource
        LsarAdtUnregisterSecurityEventSource LsarAdtReportSecurityEvent CredrFindBestCredential
        LsarSetAuditPolicy LsarQueryAuditPolicy LsarEnumerateAuditPolicy LsarEnumerateAuditCategories
        LsarEnumerateAuditSubCategories LsarLookupAuditCategoryName LsarLookupAuditSubCategoryName
        LsarSetAuditSecurity LsarQueryAuditSecurity CredReadByTokenHandle CredrRestoreCredentials
        CredrBackupCredentials""",
    "6bffd098-a112-3610-9833-46c3f87e345a": """
        NetrWkstaGetInfo NetrWkstaSetInfo NetrWkstaUserEnum NetrWkstaUserGetInfo NetrWkstaUserSetInfo
        NetrWkstaTransportEnum NetrWkstaTransportAdd NetrWkstaTransportDel NetrUseAdd NetrUseGetInfo
        NetrUseDel NetrUseEnum NetrMessageBufferSend NetrWorkstationStatisticsGet NetrLogonDomainNameAdd
        NetrLogonDomainNameDel NetrJoinDomain NetrUnjoinDomain NetrValidateName NetrRenameMachineInDomain
        NetrGetJoinInformation NetrGetJoinableOUs NetrJoinDomain2 NetrUnjoinDomain2
        NetrRenameMachineInDomain2 NetrValidateName2 NetrGetJoinableOUs2 NetrAddAlternateComputerName
        NetrRemoveAlternateComputerName NetrSetPrimaryComputerName NetrEnumerateComputerNames
        NetrWorkstationResetDfsCache""",
    "e1af8308-5d1f-11c9-91a4-08002b14a0fa": """
        ept_insert ept_delete ept_lookup ept_map ept_lookup_handle_free ept_inq_object ept_mgmt_delete
        ept_map_auth ept_map_auth_async""",
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2": """
        DRSBind DRSUnbind DRSReplicaSync DRSGetNCChanges DRSUpdateRefs DRSReplicaAdd DRSReplicaDel
        DRSReplicaModify DRSVerifyNames DRSGetMemberships DRSInterDomainMove DRSGetNT4ChangeLog
        DRSCrackNames DRSWriteSPN DRSRemoveDsServer DRSRemoveDsDomain DRSDomainControllerInfo DRSAddEntry
        DRSExecuteKCC DRSGetReplInfo DRSAddSidHistory DRSGetMemberships2 DRSReplicaVerifyObjects
        DRSGetObjectExistence DRSQuerySitesByCost""",
    "3dde7c30-165d-11d1-ab8f-00805f14db40": "bkrp_BackupKey",
    "894de0c0-0d55-11d3-a322-00c04fa321a1": "BaseInitiateShutdown BaseAbortShutdown BaseInitiateShutdownEx",
    "d95afe70-a6d5-4259-822e-2c84da1ddb0d": "WsdrInitiateShutdown WsdrAbortShutdown",
    "82273fdc-e32a-18c3-3f78-827929dc23ea": """
        ElfrClearELFW ElfrBackupELFW ElfrCloseEL ElfrDeregisterEventSource ElfrNumberOfRecords
        ElfrOldestRecord ElfrChangeNotify ElfrOpenELW ElfrRegisterEventSourceW ElfrOpenBELW ElfrReadELW
        ElfrReportEventW ElfrClearELFA ElfrBackupELFA ElfrOpenELA ElfrRegisterEventSourceA ElfrOpenBELA
        ElfrReadELA ElfrReportEventA ElfrRegisterClusterSvc ElfrDeregisterClusterSvc ElfrWriteClusterEvents
        ElfrGetLogInformation ElfrFlushEL ElfrReportEventAndSourceW""",
    "9556dc99-828c-11cf-a37e-00aa003240c7": """
        - - - OpenNamespace CancelAsyncCall QueryObjectSink GetObject GetObjectAsync PutClass PutClassAsync
        DeleteClass DeleteClassAsync CreateClassEnum CreateClassEnumAsync PutInstance PutInstanceAsync
        DeleteClass DeleteClassAsync CreateInstanceEnum CreateInstanceEnumAsync ExecQuery ExecQueryAsync
        ExecNotificationQuery ExecNotificationQueryAsync ExecMethod ExecMethodAsync""",
    "f309ad18-d86a-11d0-a075-00c04fb68820": "- - - EstablishPosition RequestChallenge WBEMLogin NTLMLogin",
}

OPERATIONS: dict[str, tuple[str | None, ...]] = {
    uuid: tuple(None if name == "-" else name for name in names.split()) for uuid, names in _OPS.items()
}


def endpoint(uuid: str) -> str:
    return ENDPOINTS.get(uuid, f"unknown-{uuid}")


def operation(uuid: str, opnum: int) -> str:
    names = OPERATIONS.get(uuid, ())
    name = names[opnum] if 0 <= opnum < len(names) else None
    return name or f"unknown-{opnum}"
