"""Session stores for agent frameworks, each behind its own extra:

- `fm_session_client.adapters.openai_agents` (`fm-session-client[openai-agents]`):
  the OpenAI Agents SDK's `Session` protocol;
- `fm_session_client.adapters.langchain` (`fm-session-client[langchain]`):
  LangChain's `BaseChatMessageHistory`.
"""
