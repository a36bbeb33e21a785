"""Off-policy evaluation: logged datasets and estimators."""
