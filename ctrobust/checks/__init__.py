"""Evidence that an attack worked on the model it attacked: tests of the attack, not of the model."""
