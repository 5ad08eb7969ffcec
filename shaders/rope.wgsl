// (kernel family 'rope': not written yet)
