"""Environments: jumanji's Snake (the paper's), gymnasium's CartPole, and an enumerable bandit."""
