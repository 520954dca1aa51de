/* jid: being written */
