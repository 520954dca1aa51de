/* stanza_error: being written */
