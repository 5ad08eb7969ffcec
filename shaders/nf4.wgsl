// (kernel family 'nf4': not written yet)
