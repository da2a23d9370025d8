"""Which attention matters: the importance of every head and gate on held-out cases (by masking and by Michel et
al.'s gradient proxy), pruning heads for real, and hardening soft gates (`seg heads`, `seg prune`)."""
