"""The handbook's transaction simulator and the raw daily files made from it (developer machine)."""
