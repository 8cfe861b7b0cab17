"""objaug for solo-learn: a Lightning callback switched on by an ``objaug:`` block in the solo-learn config."""
