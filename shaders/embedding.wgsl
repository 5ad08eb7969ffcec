// (kernel family 'embedding': not written yet)
