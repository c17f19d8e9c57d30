"""Privacy: what each destination may see (forming.py), and a caller's data erased from every store (erase/)."""
