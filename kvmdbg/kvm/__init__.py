"""KVM/arm64: the descriptor tables, handlers, world switch and userspace ABI."""
