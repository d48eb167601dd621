"""Media files: uploads, files of messages, the links that serve them."""
