"""Secrets from HashiCorp Vault or OpenBao: where a worker's secrets come from when its
QLRF_SECRETS_CONFIG names a vault.

`refs` parses the references (`vault:MOUNT/data/PATH#KEY`, `vault-lease:PATH`),
`config` the worker's settings, `client` talks to the vault through hvac.
Runbooks never see any of it: they write `{{ secrets.NAME }}` whatever the source.
"""
