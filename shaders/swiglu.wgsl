// (kernel family 'swiglu': not written yet)
