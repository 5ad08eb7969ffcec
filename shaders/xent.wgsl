// (kernel family 'xent': not written yet)
