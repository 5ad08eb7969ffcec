// (kernel family 'attention': not written yet)
