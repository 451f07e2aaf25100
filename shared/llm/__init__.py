"""LLM providers behind one streaming interface, the model catalog with prices, and failover between providers.

Provider SDKs load only when a provider is first used: importing this package costs nothing.
"""
