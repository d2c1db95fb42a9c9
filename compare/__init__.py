"""The implementations side by side: weight conversion, equivalence checks, the lockstep run."""
