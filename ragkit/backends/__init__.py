"""Backends: the models behind one small interface.

:mod:`.base` is the :class:`Backend` protocol, :mod:`.chooser` picks one.  The
Ollama client is :mod:`.ollama` over :mod:`.ollama_http` and :mod:`.transport`,
with host parsing in :mod:`.host`; the embedded engine is :mod:`.embedded`,
its llama.cpp sampling :mod:`.sampling`, its MiniLM -> GGUF conversion
:mod:`.convert`.
"""
