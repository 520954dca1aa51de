/* stanza: being written */
