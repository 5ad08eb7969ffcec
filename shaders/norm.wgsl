// (kernel family 'norm': not written yet)
