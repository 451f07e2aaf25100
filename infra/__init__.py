"""How Stratus is wired: the function and route catalog, the CDK stack, and the local stack that mirrors it."""
