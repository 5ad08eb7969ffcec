// (kernel family 'elementwise': not written yet)
