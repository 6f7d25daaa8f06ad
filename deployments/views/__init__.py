"""Pages of the panel, one module per area. URLs are in deployments/urls.py."""
