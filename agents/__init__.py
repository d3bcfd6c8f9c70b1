"""Roles that decide: the teacher (critique, skill analysis), the judge, the retriever, LLM backends."""
