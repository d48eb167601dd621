"""The sandbox network: a complete simulated messenger network inside the server."""
