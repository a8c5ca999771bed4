"""Who may call what: API keys with roles (``keys``) and the access rules every door applies (``guard``)."""
