/* xml_stream: being written */
