"""Knowledge bases, documents, chat apps and share links in a stack's FastGPT: the domain code
the import and publish pipelines and the actions share."""
