"""A small credit-risk model (numpy only) and an instrumented HTTP service around it, for the demo and tests."""
