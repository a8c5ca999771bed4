"""The web console's files (HTML, CSS, JavaScript), served by ``lanai.http.console``."""
