/* base64: being written */
