"""The personal area (licensee console) and the operator's pages: Jinja2 templates and htmx."""
