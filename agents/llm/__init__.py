"""LLM plumbing shared by the teacher roles: chat backends, retries, response cache, structured output, prompts."""
