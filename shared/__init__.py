"""Cross-cutting code every Stratus context shares. Kept free of imports: each module loads only what it uses."""
