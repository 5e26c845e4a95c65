"""Stage-appropriate tactics: which seller touch, done now, most raises a buyer's move-on chance.

``points`` builds features at per-buyer as-of instants (optionally with a touch appended just
before them); ``counterfactual`` scores a history with each candidate touch appended;
``uplift`` fits a T-learner on a randomised trial; ``check`` compares estimates with known
truth; ``recommend`` turns lifts into each buyer's next touches.
"""
