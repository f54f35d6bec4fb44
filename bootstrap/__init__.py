"""The bootstrap program (a Pulumi project of its own): state backend and GitHub delivery."""
