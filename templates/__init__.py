"""Package data: the Jinja templates of every generated file (shipped as tinyq.templates)."""
