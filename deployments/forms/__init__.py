"""Forms: they validate what a person typed and say what is wrong beside the field.

They never save; views hand `cleaned_data` to a do_* action. One module per area, as views
and actions are split; a view imports its forms from the area's module. Forms may use the
domain (servers, stacks, llm) and the models, never actions.
"""
