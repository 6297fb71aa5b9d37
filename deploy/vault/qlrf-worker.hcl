# The vault policy of a qlrf-run worker: read what its secrets name, and nothing else.
# Adjust the paths to the mounts and roles your QLRF_SECRETS_CONFIG names.

# KV version 2: `vault:secret/data/qlrf/db#password` reads secret/data/qlrf/db.
path "secret/data/qlrf/*" {
  capabilities = ["read"]
}

# Dynamic secrets: `vault-lease:database/creds/readonly` takes a lease per attempt...
path "database/creds/readonly" {
  capabilities = ["read"]
}

# ...renews it while a long step runs, and revokes it when the attempt ends (also the
# lease of an attempt whose worker died).
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}

# `ssh` steps with `certificate: {vault_role: ops}`: an ephemeral key signed per attempt.
path "ssh/sign/ops" {
  capabilities = ["create", "update"]
}

# Looking up and renewing the worker's own token come with Vault's `default` policy
# (auth/token/lookup-self, auth/token/renew-self); keep it attached.
