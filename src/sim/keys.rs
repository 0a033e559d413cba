//! A fixed RSA-2048 key pair for the Carbn simulator's webhook signatures (development and
//! tests only; generated once with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`).
//! Never use it for anything real: the private key is public in this repository.

/// PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`), used by the simulator to sign.
pub const CARBN_WEBHOOK_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDMFwOWi5zY4GKA
QqsAcuSWzFRp0giQE7x/RCWyFz6QOFBJd4zBFRgPxvyft1w3PfcjDLl0hvaoXe7F
Vd6teNZxIb8MI0UVxmMcxm8zDbkq1mPS3SRKIRltDTlMqDITUZuKNiEGa4okbQZ3
JRrmdqz3ClOycB4+Xdjj/X+rImTtzOp1Xmg98M10n9aF8MGouVW7BT92r1inQi9b
bAWRu2D1SSUygxS/SOK0U4/ITc7ZgVff/cjH6s96VoqknlFcXangwQnNJkPUxeR1
PDwXlmRtlEEdnx8sGZV/m2gGkOYv75QG2zRb88NyUVHBwboXoydNF5T4AT24/fkJ
Fh72LJrfAgMBAAECggEABOne7mkbvxrz3tD8FfguKbVEqQGOBDioFqD45AdBkdj7
5zDneh88Y5DaXywGc9axlFic6cHKvstNfCxw6S3vbReEu9GTkGPPhLoATl3btzzP
IsdWitRY14fJzonUHs6drIpYvt39nEU7B8j5vf0IdVrRy199/ZQRLI1bXVmSzX4m
Qezn/x9de/g8D1LxknVQyEgu6sJLGi3bH9m0e1d0Tyj6P2YLmdzCKMyyH6eO6Tq2
q/wRDV/PouSZan3lCgaEbMwAr+ywowiflgFLJx03VEhyqWYpFxKYWwPv7/zEJEtO
gqn+UwK8Zz7074mX+MtTKcLoMNVWaZP6X/tWp6pNlQKBgQD9Jygf7L/NE91wcsLx
s7luNanMQLp13JmhvPXNQVsas2a3WEfhy6rx9vic4/kVIi1rd0DOGPYxD0u7yNlB
onsXoSu8qzEwQRy5fnqBAXCHUkK9u5DOYX26Q8LILNTppZPdnvlOVH6oDH7+qNIX
GTkr2W3+O+Vm2Ea7TsmMbuHhgwKBgQDOYpoGAdj949HxU/8TJL7pgZO3vigSEHVz
MXV9c3WBIn9Br+QgR/RcYbVxAoGvO0TnkEm5JRgYZTeXpwQQCVmrUZq9OwtnEjLs
gTNjBylHtCNPAHc15s9T38bycmdMmZdDGz8qeFFtLG+DZOPtIdgTBJC+4RHSPYoQ
D732HvkudQKBgAPJFhyEGcojRehsjuW2Xkt7mfJn9WHVzqZQgQx0sbwQerS7KTgD
J6c+njEaZ5sdS7iTq/BpByVsqSFBu53zpAuSaWkE1lN2ZcuQTJypPNmJLV5Q87Vi
V9L1OHBt2zEzPKbPvcKiGNLCfROpypp10hkJw09N7fw/t68NWo4zCkWpAoGAQl48
75+aexLPCY8cYLiZWBfeO+E/m4eFbXTDNoNxjwRb7fC1KJhbAXY+VcgbkhE6OEkT
HCHMnNO3y+HekZWgK1KDs0SQhyW4EIv/zWGZKcDI9ffNXh0KIQu+O2sEwwJFPUQ+
zNaCQNxgQ92m2jPe+0alkWxpQbWed0nIqaQON50CgYAU6NEBpy6oSKaX7skVU+S9
iPxKdR2mS3ImT6eJUAm+g5V7Qv5miWl9tvmj/3qrsy9mMHnMUdf3yhlmQSN7/Zmx
4iwYkRFTjgVjdF3efnP8es6qMAL5xUcy4xF2EK2GIyT8ayM06AoDRurBUwi3JkWc
OSpV1CT+dvtAbY6a+FJkNQ==
-----END PRIVATE KEY-----
";

/// SPKI public key (`-----BEGIN PUBLIC KEY-----`), what a gateway configures to verify.
pub const CARBN_WEBHOOK_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzBcDlouc2OBigEKrAHLk
lsxUadIIkBO8f0Qlshc+kDhQSXeMwRUYD8b8n7dcNz33Iwy5dIb2qF3uxVXerXjW
cSG/DCNFFcZjHMZvMw25KtZj0t0kSiEZbQ05TKgyE1GbijYhBmuKJG0GdyUa5nas
9wpTsnAePl3Y4/1/qyJk7czqdV5oPfDNdJ/WhfDBqLlVuwU/dq9Yp0IvW2wFkbtg
9UklMoMUv0jitFOPyE3O2YFX3/3Ix+rPelaKpJ5RXF2p4MEJzSZD1MXkdTw8F5Zk
bZRBHZ8fLBmVf5toBpDmL++UBts0W/PDclFRwcG6F6MnTReU+AE9uP35CRYe9iya
3wIDAQAB
-----END PUBLIC KEY-----
";
