"""Stratus's bounded contexts, one package each; every function ships this tree and `shared/`."""
