"""Pretraining: the train state, the one jitted step, the loop and its budget, held-out MLM."""
