"""LangChain tools the agents call, each with a pydantic schema."""
