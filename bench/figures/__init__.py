"""One module per figure (B1/B2, B3, B4, B5/B5w, B6, B7); bench/run.py drives them."""
