"""Models: the interface (base), the model classes by name (classes), StarGAN, the public-release generator and a
template to copy."""
