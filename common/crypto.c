/* crypto: being written */
