"""Models across a fleet of boxes: lanai model versions as OCI artifacts in a registry (``lanai push``,
``lanai pull``), signed with OpenSSF model signing, verified before anything reaches the store."""
