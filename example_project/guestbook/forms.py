from django import forms


class EntryForm(forms.Form):
    name = forms.CharField(max_length=80)
    message = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
