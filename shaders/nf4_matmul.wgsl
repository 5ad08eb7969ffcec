// (kernel family 'nf4_matmul': not written yet)
