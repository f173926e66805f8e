"""The three gateways in front of the backend.

user-gateway and obs-gateway are plain nginx (``fixtures/compose/nginx/user.conf``,
``obs.conf``): C speed on the load-generator path, path allow-lists, one retry of idempotent
requests. The secure-gateway is nginx plus the authz service (``identity.authz``) for nginx's
``auth_request``: every request's token is checked by ``identity.validation``, the one
validation module the Control Agent also uses.

``gateway.supervisor`` runs nginx (plus authz on the secure-path), reloads nginx when an upstream
container comes back on a new address, and stops the whole unit if any part dies.
"""
