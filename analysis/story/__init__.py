"""The breach story: timeline, incidents, accounts to reset and data at risk, read from the store.

``model`` holds the facts (value objects, the contract with the report and the CLI).
"""
