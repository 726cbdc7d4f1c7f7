"""Pure response rules: RECIST 1.1, iRECIST, dissociated response, pseudoprogression, HPD."""
